-- The tenant catalog and the JWT signing keys: platform data, in the main database.
CREATE TABLE tenants (
    id          uuid PRIMARY KEY,
    slug        text NOT NULL UNIQUE,
    name        text NOT NULL,
    isolation   text NOT NULL CHECK (isolation IN ('shared', 'schema', 'database')),
    status      text NOT NULL DEFAULT 'provisioning'
                CHECK (status IN ('provisioning', 'active', 'suspended')),
    plan        text NOT NULL,
    server      text NOT NULL DEFAULT 'default',
    database    text,
    schema_name text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE signing_keys (
    kid         text PRIMARY KEY,
    alg         text NOT NULL CHECK (alg IN ('EdDSA', 'RS256')),
    private_pem text NOT NULL,
    public_jwk  jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);
CREATE INDEX signing_keys_active ON signing_keys (created_at DESC) WHERE retired_at IS NULL;

GRANT SELECT ON tenants TO ${app_role};
GRANT SELECT ON signing_keys TO ${app_role};
