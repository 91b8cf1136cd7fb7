COMMENT ON FUNCTION inventory_sync.sync_upsert(bigint, jsonb, timestamptz) IS
    'Write one item of inventory_sync.inventory with last-write-wins, atomically. Answers jsonb: applied (with created), conflict (with server_data, journaled) or rejected (clock skew, journaled).';
