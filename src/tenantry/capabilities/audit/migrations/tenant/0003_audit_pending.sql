-- Audit records written at commit by units of work (uow.audit), without the chain lock: any
-- number of a tenant's writers append here side by side. The chainer (capabilities/audit/
-- log.chain_pending) moves them into audit_events in batches, in `pos` order, while it holds
-- the tenant's chain head: seq, prev_hash and hash are given there. Tamper evidence starts
-- when a record is chained (within chain_interval_s, or at the next read or verify).
CREATE TABLE audit_pending (
    tenant_id   uuid NOT NULL,
    pos         bigserial NOT NULL,
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
    PRIMARY KEY (tenant_id, pos)
);

-- Rows are appended and then moved (deleted) by the chainer; never changed.
CREATE FUNCTION audit_pending_refuse_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_pending rows are never updated' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_pending_no_update BEFORE UPDATE ON audit_pending
    FOR EACH ROW EXECUTE FUNCTION audit_pending_refuse_update();
GRANT USAGE ON SEQUENCE audit_pending_pos_seq TO ${app_role};
