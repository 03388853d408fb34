-- Append-only, tamper-evident audit log, partitioned by month (default partition + a
-- function that creates future ones; the audit module runs it at start and daily).
CREATE TABLE audit_heads (
    tenant_id uuid PRIMARY KEY,
    seq       bigint NOT NULL DEFAULT 0,
    hash      bytea NOT NULL DEFAULT '\x'::bytea
);

CREATE TABLE audit_events (
    tenant_id   uuid NOT NULL,
    seq         bigint NOT NULL,
    id          uuid NOT NULL,
    occurred_at timestamptz NOT NULL,
    actor       text,
    actor_kind  text,
    client      text,
    ip          text,
    action      text NOT NULL,
    resource    text,
    outcome     text NOT NULL,
    request_id  text,
    trace_id    text,
    before      jsonb,
    after       jsonb,
    details     jsonb,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL,
    PRIMARY KEY (tenant_id, seq, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX audit_events_time_idx ON audit_events (tenant_id, occurred_at, seq);
CREATE TABLE audit_events_default PARTITION OF audit_events DEFAULT;

-- Append-only: no role but the owner (who could drop the trigger) changes or deletes a row;
-- `tenantry audit verify` detects it if someone does.
CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();

-- Monthly partitions from this month to `ahead` months on; idempotent. Run as the owner.
CREATE FUNCTION audit_ensure_partitions(ahead int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', now())::date;
    m date;
    name text;
    made int := 0;
BEGIN
    FOR i IN 0..ahead LOOP
        m := (first + make_interval(months => i))::date;
        name := 'audit_events_' || to_char(m, 'YYYY_MM');
        IF to_regclass(format('%I.%I', current_schema(), name)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I.%I PARTITION OF %I.audit_events FOR VALUES FROM (%L) TO (%L)',
                current_schema(), name, current_schema(), m, (m + interval '1 month')::date);
            made := made + 1;
        END IF;
    END LOOP;
    RETURN made;
END $$;
SELECT audit_ensure_partitions(2);
