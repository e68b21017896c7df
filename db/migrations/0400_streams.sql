-- Streams (issue 10): the incident event log's epoch. A websocket client
-- resumes from a seq only within the same epoch; a log that is lost or
-- restored from a backup gets a new epoch (rotate it by hand after a
-- restore: UPDATE incident_log_epoch SET epoch = gen_random_uuid()::text),
-- so its clients are told to start over instead of being given a gap.
CREATE TABLE incident_log_epoch (
    only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    epoch text NOT NULL
);
INSERT INTO incident_log_epoch (epoch) VALUES (gen_random_uuid()::text);
