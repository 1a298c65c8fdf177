-- +goose Up
-- status holds live status values pushed to /ws/status/{key}/ subscribers.
-- version only grows, so subscribers can drop stale pushes.
CREATE TABLE status (
    key        VARCHAR(100) PRIMARY KEY,
    value      TEXT NOT NULL,
    version    BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL
);

-- +goose Down
DROP TABLE status;
