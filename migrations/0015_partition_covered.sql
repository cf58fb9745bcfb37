-- 0015_partition_covered: a day another partition already covers is not created again.
--
-- gw_ensure_partition made <table>_pYYYYMMDD for a day unless a table of that name existed. A partition
-- the gateway did not make (an operator's partition of a whole month, attached by hand: 0003 leaves such
-- partitions alone) makes that CREATE fail with 42P17 ("would overlap partition"), and a DEFAULT
-- partition already holding rows of the day with 23514 ("updated partition constraint for default
-- partition would be violated"). The writer retried the day's CREATE after each backoff, forever, and
-- ingestion stalled behind it, although the day's rows fit where Postgres routes them. Either way the day
-- now counts as existing (false: nothing created). A row the other partition does not take (one covering
-- only part of the day) fails as a row without a partition, is tried again after the check of the days,
-- and is then kept in ai_interaction_rejects with that reason.
CREATE OR REPLACE FUNCTION gw_ensure_partition(tbl text, day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  part text := tbl || '_p' || to_char(day, 'YYYYMMDD');
BEGIN
  IF to_regclass(quote_ident(part)) IS NOT NULL THEN
    RETURN false;
  END IF;
  BEGIN
    EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)', part, tbl,
                   to_char(day, 'YYYY-MM-DD') || ' 00:00:00+00', to_char(day + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
  EXCEPTION WHEN duplicate_table OR unique_violation OR invalid_object_definition OR check_violation THEN
    RETURN false;
  END;
  RETURN true;
END
$$;
