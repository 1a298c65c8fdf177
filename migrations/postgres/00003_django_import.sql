-- +goose Up
-- Users imported from Django (`switchboard importusers`). last_login is
-- Django's; created_at takes Django's date_joined. django_import is the
-- Django row as last imported (JSON: username, email, password, is_active,
-- is_staff, date_joined, last_login), NULL for users never imported: a
-- re-import changes a field only where Django's value differs from it, so a
-- password switchboard has since rehashed at login, or a change made in
-- switchboard, is kept unless Django changed that field too.
ALTER TABLE users ADD COLUMN last_login TIMESTAMPTZ NULL;
ALTER TABLE users ADD COLUMN django_import TEXT NULL;

-- +goose Down
ALTER TABLE users DROP COLUMN django_import;
ALTER TABLE users DROP COLUMN last_login;
