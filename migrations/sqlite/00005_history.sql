-- +goose Up
-- Group history (chat messages and publishes), durable so recovery survives
-- restarts of every process and the loss of Redis. history_groups holds each
-- group's epoch (random; a new one means offsets cannot be compared) and
-- its last offset. Appending locks the group's row (UPDATE ... RETURNING),
-- so concurrent processes get consecutive offsets with no gap or repeat,
-- and an offset is visible only once its transaction has committed.
CREATE TABLE history_groups (
    name        VARCHAR(100) PRIMARY KEY,
    epoch       VARCHAR(32) NOT NULL,
    last_offset BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE history_messages (
    group_name VARCHAR(100) NOT NULL,
    "offset"   BIGINT NOT NULL,
    payload    TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (group_name, "offset")
);
CREATE INDEX history_messages_created_at ON history_messages (created_at);

-- +goose Down
DROP TABLE history_messages;
DROP TABLE history_groups;
