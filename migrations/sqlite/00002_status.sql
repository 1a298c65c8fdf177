-- +goose Up
-- status holds live status values pushed to /ws/status/{key}/ subscribers.
-- version only grows, so subscribers can drop stale pushes.
CREATE TABLE status (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    updated_at DATETIME NOT NULL
);

-- +goose Down
DROP TABLE status;
