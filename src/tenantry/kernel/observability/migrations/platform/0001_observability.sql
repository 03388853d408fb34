-- Observability in PostgreSQL: error tracking (groups + monthly occurrence partitions),
-- per-minute request metrics (SLOs) and an optional span store (daily partitions).
-- Occurrences and spans carry the tenant in a column named ``tenant``, deliberately not
-- ``tenant_id``: they are operator data read only by platform admins, not tenant-owned rows.

CREATE TABLE error_groups (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint   text NOT NULL,
    environment   text NOT NULL,
    error_type    text NOT NULL,
    message       text NOT NULL,
    culprit       text,
    status        text NOT NULL DEFAULT 'unresolved'
                  CHECK (status IN ('unresolved', 'resolved', 'ignored')),
    first_seen    timestamptz NOT NULL DEFAULT now(),
    last_seen     timestamptz NOT NULL DEFAULT now(),
    occurrences   bigint NOT NULL DEFAULT 0,
    first_release text,
    release       text,
    resolved_at   timestamptz,
    UNIQUE (fingerprint, environment)
);
CREATE INDEX error_groups_recent ON error_groups (last_seen DESC);

CREATE TABLE error_occurrences (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    group_id    bigint NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now(),
    message     text NOT NULL,
    stack       jsonb NOT NULL,
    request     jsonb,
    context     jsonb,
    tenant      uuid,
    principal   text,
    request_id  text,
    trace_id    text,
    release     text,
    PRIMARY KEY (occurred_at, id)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE error_occurrences_default PARTITION OF error_occurrences DEFAULT;
CREATE INDEX error_occurrences_group ON error_occurrences (group_id, occurred_at DESC);

CREATE TABLE request_minutes (
    minute        timestamptz NOT NULL,
    method        text NOT NULL,
    route         text NOT NULL,
    total         bigint NOT NULL,
    server_errors bigint NOT NULL,
    client_errors bigint NOT NULL,
    duration_ms   double precision NOT NULL,
    buckets       bigint[] NOT NULL,
    PRIMARY KEY (minute, method, route)
);

CREATE TABLE otel_spans (
    trace_id       text NOT NULL,
    span_id        text NOT NULL,
    parent_span_id text,
    name           text NOT NULL,
    kind           text NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    duration_ms    double precision NOT NULL,
    status         text NOT NULL,
    attributes     jsonb NOT NULL,
    tenant         uuid,
    service        text NOT NULL,
    PRIMARY KEY (start_time, trace_id, span_id)
) PARTITION BY RANGE (start_time);
CREATE TABLE otel_spans_default PARTITION OF otel_spans DEFAULT;
CREATE INDEX otel_spans_trace ON otel_spans (trace_id);

-- Range partitions named <parent>_pYYYYMM (month) or <parent>_pYYYYMMDD (day), created from
-- the current period up to ``ahead`` periods later. Identifiers go through format('%I').
CREATE FUNCTION ensure_range_partitions(parent text, unit text, ahead integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    step interval := CASE unit WHEN 'month' THEN interval '1 month' ELSE interval '1 day' END;
    fmt text := CASE unit WHEN 'month' THEN 'YYYYMM' ELSE 'YYYYMMDD' END;
    lo timestamptz := date_trunc(unit, now());
    made integer := 0;
    name text;
BEGIN
    IF unit NOT IN ('month', 'day') THEN
        RAISE EXCEPTION 'unit must be month or day';
    END IF;
    FOR i IN 0..ahead LOOP
        name := parent || '_p' || to_char(lo, fmt);
        IF to_regclass(format('%I', name)) IS NULL THEN
            BEGIN
                EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                               name, parent, lo, lo + step);
                made := made + 1;
            EXCEPTION WHEN check_violation OR invalid_object_definition THEN
                RAISE WARNING 'partition % not created: the default partition holds its rows', name;
            END;
        END IF;
        lo := lo + step;
    END LOOP;
    RETURN made;
END $$;

CREATE FUNCTION drop_range_partitions(parent text, unit text, keep integer)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    fmt text := CASE unit WHEN 'month' THEN 'YYYYMM' ELSE 'YYYYMMDD' END;
    horizon text := to_char(date_trunc(unit, now()) - (keep || ' ' || unit)::interval, fmt);
    dropped integer := 0;
    r record;
BEGIN
    FOR r IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        JOIN pg_class p ON p.oid = i.inhparent
        JOIN pg_namespace n ON n.oid = p.relnamespace
        WHERE p.relname = parent AND n.nspname = current_schema()
          AND c.relname ~ ('^' || parent || '_p[0-9]+$')
    LOOP
        IF substr(r.relname, length(parent) + 3) < horizon THEN
            EXECUTE format('DROP TABLE %I', r.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;

-- The names of the FraiseQL case study.
CREATE FUNCTION ensure_error_occurrence_partitions(months_ahead integer)
RETURNS integer LANGUAGE sql AS
$$ SELECT ensure_range_partitions('error_occurrences', 'month', months_ahead) $$;

CREATE FUNCTION drop_old_error_occurrence_partitions(keep_months integer)
RETURNS integer LANGUAGE sql AS
$$ SELECT drop_range_partitions('error_occurrences', 'month', keep_months) $$;

SELECT ensure_range_partitions('error_occurrences', 'month', 3);
SELECT ensure_range_partitions('otel_spans', 'day', 2);

GRANT SELECT, INSERT, UPDATE ON error_groups TO ${app_role};
GRANT SELECT, INSERT ON error_occurrences TO ${app_role};
GRANT SELECT, INSERT, UPDATE, DELETE ON request_minutes TO ${app_role};
GRANT SELECT, INSERT ON otel_spans TO ${app_role};
