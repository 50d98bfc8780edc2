-- Users, API tokens and browser sessions (package auth).
-- Times are Unix nanoseconds (INTEGER) so that every dialect stores them the
-- same way and comparisons are plain integer comparisons.

CREATE TABLE users (
	name          TEXT    PRIMARY KEY,
	-- bcrypt hash; empty for users who sign in with API tokens only.
	password_hash TEXT    NOT NULL DEFAULT '',
	role          TEXT    NOT NULL,
	created_at    INTEGER NOT NULL
);

CREATE TABLE api_tokens (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	-- SHA-256 of the plaintext token; the plaintext is never stored.
	token_hash   BLOB    NOT NULL UNIQUE,
	user_name    TEXT    NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	description  TEXT    NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER,          -- NULL: never expires
	last_used_at INTEGER           -- NULL: never used
);

CREATE INDEX api_tokens_user ON api_tokens(user_name);

CREATE TABLE sessions (
	-- SHA-256 of the session id held in the browser cookie.
	id_hash    BLOB    PRIMARY KEY,
	user_name  TEXT    NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	csrf_token TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
);

CREATE INDEX sessions_expires ON sessions(expires_at);
