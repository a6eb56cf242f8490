-- Session generations (how often a session's token was rotated) and denylist entries left by
-- rotations. Rows written before keep generation 0 and their revocation entries.

ALTER TABLE sk_sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

-- A denylist row is either a revocation (reason set: every access token of the session is
-- refused) or a rotation's entry (below_generation set: access tokens issued for a generation
-- below it are refused), never both.
ALTER TABLE sk_denied ALTER COLUMN reason DROP NOT NULL;
ALTER TABLE sk_denied ADD COLUMN below_generation BIGINT;
ALTER TABLE sk_denied ADD CONSTRAINT sk_denied_scope CHECK ((reason IS NULL) <> (below_generation IS NULL));
