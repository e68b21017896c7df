-- Each incident carries how much evidence it has. Every list, export and
-- OGC page used to count it per row (a subquery of 2,001 index probes was
-- 64 of the 80 ms a 2,000-row export page cost; docs/history.md). The
-- trigger keeps the count with every evidence row actually inserted (the
-- engine's ON CONFLICT DO NOTHING skips fire nothing), in the inserting
-- transaction, whoever writes. The seed (sim/seed) disables it for its
-- bulk load and writes the counts itself.
ALTER TABLE incidents ADD COLUMN evidence_count integer NOT NULL DEFAULT 0;

UPDATE incidents i SET evidence_count = c.n
FROM (SELECT incident_id, count(*) AS n FROM incident_evidence GROUP BY 1) c
WHERE c.incident_id = i.id;

CREATE FUNCTION incident_evidence_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		UPDATE incidents SET evidence_count = evidence_count + 1 WHERE id = NEW.incident_id;
	ELSE
		UPDATE incidents SET evidence_count = evidence_count - 1 WHERE id = OLD.incident_id;
	END IF;
	RETURN NULL;
END $$;

CREATE TRIGGER incident_evidence_count AFTER INSERT OR DELETE ON incident_evidence
	FOR EACH ROW EXECUTE FUNCTION incident_evidence_counted();
