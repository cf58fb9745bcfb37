-- A record or event Postgres refuses is kept once in ai_interaction_rejects. Its batch may be written
-- again (a later step of it failed and it is retried, or the gateway stopped before the spool's commit and
-- replays it), and each time the same rows were refused and kept again. The key: the span and the record
-- as kept (jsonb's text is canonical); the error may differ between attempts and is not part of it.
DELETE FROM ai_interaction_rejects a USING ai_interaction_rejects b
 WHERE a.id > b.id
   AND coalesce(a.trace_id, '') = coalesce(b.trace_id, '')
   AND coalesce(a.span_id, '') = coalesce(b.span_id, '')
   AND md5(a.record::text) = md5(b.record::text);
CREATE UNIQUE INDEX ai_interaction_rejects_once_idx
  ON ai_interaction_rejects (coalesce(trace_id, ''), coalesce(span_id, ''), md5(record::text));
