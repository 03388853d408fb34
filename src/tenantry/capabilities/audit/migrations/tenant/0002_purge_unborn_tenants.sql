-- A tenant whose provisioning failed is purged (kernel: Provisioner.purge_rows): its audit
-- records may go too, but only while the catalog says it is still `provisioning`. Tenants
-- in their own database are dropped whole and never purged row by row.
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND to_regclass('tenantry.tenants') IS NOT NULL THEN
        IF EXISTS (SELECT 1 FROM tenantry.tenants
                   WHERE id = OLD.tenant_id AND status = 'provisioning') THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
