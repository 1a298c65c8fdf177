-- +goose Up
-- token_version is the version every token of the user carries (claim
-- "token_version"; absent means 0). "Log out everywhere", a password
-- change and a staff revocation raise it by one: tokens carrying a lower
-- version are refused, exactly, even within the same second, and the
-- check rides on the user lookup every request and handshake already do.
ALTER TABLE users ADD COLUMN token_version BIGINT NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE users DROP COLUMN token_version;
