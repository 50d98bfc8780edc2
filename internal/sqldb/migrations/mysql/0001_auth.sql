-- Users, API tokens and browser sessions (package auth): the MySQL/MariaDB
-- form of sqlite/0001_auth.sql. Times are Unix nanoseconds (BIGINT).
-- Every table compares text byte by byte (utf8mb4_bin), as SQLite does:
-- "Alice" and "alice" are two users. Each statement is safe to re-run,
-- since MySQL commits DDL as it goes.

CREATE TABLE IF NOT EXISTS users (
	name          VARCHAR(255) NOT NULL PRIMARY KEY,
	-- bcrypt hash; empty for users who sign in with API tokens only.
	password_hash VARCHAR(255) NOT NULL DEFAULT '',
	role          VARCHAR(32)  NOT NULL,
	created_at    BIGINT       NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS api_tokens (
	id           BIGINT        NOT NULL AUTO_INCREMENT PRIMARY KEY,
	-- SHA-256 of the plaintext token; the plaintext is never stored.
	token_hash   VARBINARY(32) NOT NULL,
	user_name    VARCHAR(255)  NOT NULL,
	description  VARCHAR(1000) NOT NULL DEFAULT '',
	created_at   BIGINT        NOT NULL,
	expires_at   BIGINT        NULL,
	last_used_at BIGINT        NULL,
	UNIQUE KEY api_tokens_hash (token_hash),
	KEY api_tokens_user (user_name),
	CONSTRAINT api_tokens_user_fk FOREIGN KEY (user_name) REFERENCES users(name) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

CREATE TABLE IF NOT EXISTS sessions (
	-- SHA-256 of the session id held in the browser cookie.
	id_hash    VARBINARY(32) NOT NULL PRIMARY KEY,
	user_name  VARCHAR(255)  NOT NULL,
	csrf_token VARCHAR(255)  NOT NULL,
	created_at BIGINT        NOT NULL,
	expires_at BIGINT        NOT NULL,
	KEY sessions_expires (expires_at),
	CONSTRAINT sessions_user_fk FOREIGN KEY (user_name) REFERENCES users(name) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
