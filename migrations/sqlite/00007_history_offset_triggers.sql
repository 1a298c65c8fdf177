-- +goose Up
-- On SQLite a group commit is one INSERT (models.HistoryStore.Append): the
-- writer knows each group's last offset from its previous commit and
-- inserts the next ones; these triggers keep history_groups.last_offset
-- in step and refuse a row whose offset is not the group's next, so a
-- writer whose knowledge is stale (another process appended meanwhile, or
-- the group's row is gone) fails, reads the offsets again under the write
-- lock, and retries. Offsets stay consecutive with no gap or repeat, as
-- with the UPDATE ... RETURNING that PostgreSQL keeps. A switchboard
-- binary from before this migration bumps last_offset before inserting
-- and is refused here: migrate down to 6 before running one.
-- +goose StatementBegin
CREATE TRIGGER history_messages_in_turn BEFORE INSERT ON history_messages
BEGIN
    SELECT RAISE(ABORT, 'switchboard: history offset out of turn')
    WHERE NEW."offset" IS NOT (SELECT last_offset + 1 FROM history_groups WHERE name = NEW.group_name);
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER history_messages_bump AFTER INSERT ON history_messages
BEGIN
    UPDATE history_groups SET last_offset = NEW."offset" WHERE name = NEW.group_name;
END;
-- +goose StatementEnd

-- +goose Down
DROP TRIGGER history_messages_bump;
DROP TRIGGER history_messages_in_turn;
