-- 0003_retention: partition upkeep and retention (DESIGN §6), one function the gateway's maintenance
-- loop calls (gateway/store/maintain.c) and `genai-gateway maintain` runs by hand.
--
-- gw_maintain(now_ts, days_ahead, retention_days, rollup_retention_days), all in UTC days:
--   - creates the daily partitions of ai_interaction_traces and ai_interaction_events for the day of
--     now_ts and the days_ahead days after it (the writer still creates any other day a batch needs);
--   - drops every daily partition whose whole day ended at or before now_ts - retention_days: the
--     receivers already refuse spans that start before that instant, so nothing can land there again.
--     Dropping partitions, never a DELETE scan over the big tables;
--   - deletes hourly rollup rows older than now_ts - rollup_retention_days (rollups outlive raw rows so
--     long-range cost and latency trends stay on the dashboards), and Postgres rejects older than the
--     raw retention.
-- now_ts is a parameter, not now(), so a test (or an operator replaying a day) can run it at any clock.
-- Only one session runs it at a time (a transaction advisory lock; a second caller, e.g. another sidecar
-- replica, returns at once with ran = false). Dropping a partition locks its parent for a moment: a
-- lock_timeout keeps that from queueing behind a long dashboard query; the next run tries again.
-- Partitions are recognised by name (<table>_pYYYYMMDD, as gw_ensure_partition names them) among the
-- table's own partitions; any other partition an operator attached is left alone.

CREATE FUNCTION gw_maintain(now_ts timestamptz, days_ahead int, retention_days int, rollup_retention_days int,
                            OUT ran boolean, OUT partitions_created int, OUT partitions_dropped int,
                            OUT rollup_rows_deleted bigint, OUT rejects_deleted bigint)
LANGUAGE plpgsql AS $$
DECLARE
  today date := (now_ts AT TIME ZONE 'UTC')::date;
  cutoff timestamptz := now_ts - make_interval(days => retention_days);
  rollup_cutoff timestamptz := now_ts - make_interval(days => rollup_retention_days);
  tbl text;
  p record;
  d int;
BEGIN
  ran := false;
  partitions_created := 0;
  partitions_dropped := 0;
  rollup_rows_deleted := 0;
  rejects_deleted := 0;
  IF now_ts IS NULL OR days_ahead IS NULL OR days_ahead < 0 OR retention_days IS NULL OR retention_days < 1
     OR rollup_retention_days IS NULL OR rollup_retention_days < retention_days THEN
    RAISE EXCEPTION 'gw_maintain: bad arguments (days_ahead >= 0, retention_days >= 1, rollup_retention_days >= retention_days)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  -- 0x67776d74, "gwmt": the maintenance lock key (migrations use their own).
  IF NOT pg_try_advisory_xact_lock(1735880052) THEN
    RETURN;
  END IF;
  ran := true;
  SET LOCAL lock_timeout = '5s';
  FOREACH tbl IN ARRAY ARRAY['ai_interaction_traces', 'ai_interaction_events'] LOOP
    FOR d IN 0 .. days_ahead LOOP
      IF gw_ensure_partition(tbl, today + d) THEN
        partitions_created := partitions_created + 1;
      END IF;
    END LOOP;
    FOR p IN
      SELECT c.relname AS name, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
      FROM pg_inherits i
      JOIN pg_class c ON c.oid = i.inhrelid
      WHERE i.inhparent = tbl::regclass AND c.relname ~ ('^' || tbl || '_p[0-9]{8}$')
      ORDER BY 2
    LOOP
      IF ((p.day + 1)::timestamp AT TIME ZONE 'UTC') <= cutoff THEN
        EXECUTE format('DROP TABLE %I', p.name);
        partitions_dropped := partitions_dropped + 1;
      END IF;
    END LOOP;
  END LOOP;
  DELETE FROM trace_metrics_hourly WHERE hour_bucket < rollup_cutoff;
  GET DIAGNOSTICS rollup_rows_deleted = ROW_COUNT;
  DELETE FROM ai_interaction_rejects WHERE created_at < cutoff;
  GET DIAGNOSTICS rejects_deleted = ROW_COUNT;
END
$$;
