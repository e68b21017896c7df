-- Ingest hardening (issue 9, finding 10).
--
-- registered_at: set when an admin registers the device
-- (POST /api/v1/devices). With require_registered_devices on, ingest
-- accepts messages only from devices that have it; rows ingest creates on
-- its own leave it NULL.
ALTER TABLE devices ADD COLUMN registered_at timestamptz;
CREATE INDEX devices_registered_idx ON devices (id) WHERE registered_at IS NOT NULL;
