-- sessionkit SqlStore schema (SQLite). Tables hold token digests (base64url SHA-256),
-- never tokens. Timestamps are Unix nanoseconds (BIGINT).

-- One row per user who ever logged in: the row each per-user transaction locks
-- in PostgreSQL; SQLite serialises writers with BEGIN IMMEDIATE instead, so the limit, revoke-all and rotations are atomic per user.
CREATE TABLE sk_users (
    user_id TEXT PRIMARY KEY
);

CREATE TABLE sk_sessions (
    seq INTEGER PRIMARY KEY, -- creation order; scan cursor
    digest TEXT NOT NULL UNIQUE,                             -- the hot path: touch by digest
    id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    idle_deadline BIGINT NOT NULL,
    absolute_deadline BIGINT NOT NULL,
    remember_me BIGINT NOT NULL,
    request_count BIGINT NOT NULL,
    metadata TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX sk_sessions_user ON sk_sessions (user_id, created_at);
CREATE INDEX sk_sessions_idle ON sk_sessions (idle_deadline);
CREATE INDEX sk_sessions_absolute ON sk_sessions (absolute_deadline);

-- Refresh tokens: the current one (spent_at NULL) and the spent ones still recognised as
-- reuse; n orders a family (the current token has the highest n). Only the token spent last
-- keeps its sealed successor, for replays within the grace window.
CREATE TABLE sk_refresh (
    digest TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    spent_at BIGINT,
    sealed BLOB
);
CREATE INDEX sk_refresh_session ON sk_refresh (session_id, n);

-- Remembered revocations: a revoked session's token digest (or refresh digest) -> reason.
CREATE TABLE sk_revoked (
    seq INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    until_at BIGINT NOT NULL
);
CREATE INDEX sk_revoked_until ON sk_revoked (until_at);

-- The access-token denylist: session id -> reason, until the last access token expires.
CREATE TABLE sk_denied (
    seq INTEGER PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE,
    reason TEXT NOT NULL,
    until_at BIGINT NOT NULL
);
CREATE INDEX sk_denied_until ON sk_denied (until_at);
