-- Session generations (how often a session's token was rotated) and denylist entries left by
-- rotations. Rows written before keep generation 0 and their revocation entries.

ALTER TABLE sk_sessions ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;

-- A denylist row is either a revocation (reason set: every access token of the session is
-- refused) or a rotation's entry (below_generation set: access tokens issued for a generation
-- below it are refused), never both. SQLite cannot drop a NOT NULL constraint: the table is
-- rebuilt, keeping its rows and their seq.
CREATE TABLE sk_denied_v2 (
    seq INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE,
    reason TEXT,
    below_generation BIGINT,
    until_at BIGINT NOT NULL,
    CHECK ((reason IS NULL) <> (below_generation IS NULL))
);
INSERT INTO sk_denied_v2 (seq, session_id, reason, below_generation, until_at)
    SELECT seq, session_id, reason, NULL, until_at FROM sk_denied;
DROP TABLE sk_denied;
ALTER TABLE sk_denied_v2 RENAME TO sk_denied;
CREATE INDEX sk_denied_until ON sk_denied (until_at);
