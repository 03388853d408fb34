-- The HMAC key of download links, one per installation, made from PostgreSQL's strong random
-- source (gen_random_uuid uses pg_strong_random). Overridden by exports.download_secret.
CREATE TABLE export_signing (
    id     integer PRIMARY KEY CHECK (id = 1),
    secret text NOT NULL
);
INSERT INTO export_signing (id, secret)
VALUES (1, replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''));
GRANT SELECT ON export_signing TO ${app_role};
