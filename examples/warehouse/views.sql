-- tokenmeter warehouse views over the JSON access log (DuckDB).
--
-- Input: a table `raw_log(j JSON)`, one row per access-log line, where each line is one
-- JSON object whose keys are the filter-state names (`gen_ai.usage.input_tokens`,
-- `llm.cost_usd`, ...) plus `start_time`, `response_code`, `duration_ms` and the two retry
-- headers. run_views.py creates it with
--     CREATE TEMP TABLE raw_log AS SELECT json AS j FROM read_ndjson_objects('<file>');
-- and then runs this file.
--
-- Robust to how the logger wrote values:
--   * token counts as strings ("123", Envoy's %FILTER_STATE(...:PLAIN)%) or numbers (123);
--   * absent values as JSON null, "" or "-" (Envoy's text placeholder);
--   * `llm.cost_usd` as a decimal string with 9 places; empty means *unpriced*, which stays
--     NULL (unknown), never 0. Money is DECIMAL(38, 9) throughout, so sums are exact.
-- Lines without `gen_ai.provider.name` are traffic the filter did not recognise; they are
-- left out of every view.

CREATE OR REPLACE TEMP MACRO tm_str(j, k) AS
    NULLIF(NULLIF(trim(json_extract_string(j, '$."' || k || '"')), ''), '-');
-- Unreported token counts are 0 (the filter's own convention).
CREATE OR REPLACE TEMP MACRO tm_int(j, k) AS
    COALESCE(TRY_CAST(tm_str(j, k) AS BIGINT), 0);
CREATE OR REPLACE TEMP MACRO tm_usd(j, k) AS
    TRY_CAST(tm_str(j, k) AS DECIMAL(38, 9));

-- One typed row per metered request.
CREATE OR REPLACE TEMP VIEW llm_requests AS
SELECT
    TRY_CAST(substr(tm_str(j, 'start_time'), 1, 10) AS DATE)   AS day,
    tm_str(j, 'start_time')                                    AS start_time,
    TRY_CAST(tm_str(j, 'response_code') AS INTEGER)            AS response_code,
    TRY_CAST(tm_str(j, 'duration_ms') AS BIGINT)               AS duration_ms,
    tm_str(j, 'gen_ai.provider.name')                          AS provider,
    tm_str(j, 'gen_ai.operation.name')                         AS operation,
    COALESCE(tm_str(j, 'gen_ai.request.model'), 'unknown')     AS model,
    tm_str(j, 'gen_ai.response.model')                         AS response_model,
    tm_int(j, 'gen_ai.usage.input_tokens')                     AS input_tokens,
    tm_int(j, 'gen_ai.usage.output_tokens')                    AS output_tokens,
    tm_int(j, 'gen_ai.usage.cache_read.input_tokens')          AS cache_read_tokens,
    tm_int(j, 'gen_ai.usage.cache_creation.input_tokens')      AS cache_creation_tokens,
    tm_int(j, 'gen_ai.usage.reasoning.output_tokens')          AS reasoning_tokens,
    tm_usd(j, 'llm.cost_usd')                                  AS cost_usd,
    tm_usd(j, 'llm.cost_usd') IS NULL                          AS unpriced,
    COALESCE(tm_str(j, 'llm.usage_source'), 'missing')         AS usage_source,
    COALESCE(tm_str(j, 'llm.feature'), 'unknown')              AS feature,
    COALESCE(tm_str(j, 'llm.customer'), 'unknown')             AS customer,
    tm_str(j, 'llm.user')                                      AS "user",
    -- Same rule as tokenmeter_retries_total: an SDK retry, or an Envoy retry upstream of us.
    COALESCE(TRY_CAST(tm_str(j, 'x-stainless-retry-count') AS INTEGER), 0) > 0
        OR COALESCE(TRY_CAST(tm_str(j, 'x-envoy-attempt-count') AS INTEGER), 1) > 1 AS is_retry
FROM raw_log
WHERE tm_str(j, 'gen_ai.provider.name') IS NOT NULL;

-- 1. Spend by feature, top ten.
CREATE OR REPLACE TEMP VIEW spend_by_feature AS
SELECT
    feature,
    count(*)                                  AS requests,
    COALESCE(sum(cost_usd), 0)::DECIMAL(38, 9) AS spend_usd,
    count(*) FILTER (WHERE unpriced)          AS unpriced_requests
FROM llm_requests
GROUP BY feature
ORDER BY spend_usd DESC, feature
LIMIT 10;

-- 2. Spend by model.
CREATE OR REPLACE TEMP VIEW spend_by_model AS
SELECT
    provider,
    model,
    count(*)                                  AS requests,
    COALESCE(sum(cost_usd), 0)::DECIMAL(38, 9) AS spend_usd,
    count(*) FILTER (WHERE unpriced)          AS unpriced_requests,
    -- Over priced requests only: an unpriced request has no cost, not a zero cost.
    (sum(cost_usd) / NULLIF(count(cost_usd), 0))::DECIMAL(38, 9) AS cost_per_priced_request_usd
FROM llm_requests
GROUP BY provider, model
ORDER BY spend_usd DESC, provider, model;

-- 3. Spend by customer.
CREATE OR REPLACE TEMP VIEW spend_by_customer AS
SELECT
    customer,
    count(*)                                  AS requests,
    COALESCE(sum(cost_usd), 0)::DECIMAL(38, 9) AS spend_usd,
    count(*) FILTER (WHERE unpriced)          AS unpriced_requests
FROM llm_requests
GROUP BY customer
ORDER BY spend_usd DESC, customer;

-- 4. Token trends per day and feature, with prompt growth against the same weekday a week
--    earlier. Averages use requests with usage (reported or estimated) only, so a request
--    whose usage was missing does not read as an empty prompt.
CREATE OR REPLACE TEMP VIEW token_trends AS
WITH daily AS (
    SELECT
        day,
        feature,
        count(*)                                             AS requests,
        count(*) FILTER (WHERE usage_source <> 'missing')    AS requests_with_usage,
        sum(input_tokens)                                    AS input_tokens,
        sum(output_tokens)                                   AS output_tokens,
        sum(input_tokens) FILTER (WHERE usage_source <> 'missing')
            / NULLIF(count(*) FILTER (WHERE usage_source <> 'missing'), 0) AS avg_input_tokens_per_request
    FROM llm_requests
    GROUP BY day, feature
)
SELECT
    d.day,
    d.feature,
    d.requests,
    d.input_tokens,
    d.output_tokens,
    round(d.avg_input_tokens_per_request, 1)                AS avg_input_tokens_per_request,
    round(w.avg_input_tokens_per_request, 1)                AS avg_input_tokens_week_before,
    round(d.avg_input_tokens_per_request / NULLIF(w.avg_input_tokens_per_request, 0), 3) AS prompt_growth
FROM daily d
LEFT JOIN daily w ON w.feature = d.feature AND w.day = d.day - INTERVAL 7 DAY
ORDER BY d.day, d.feature;

-- 5. Cache hit and retry rates per feature.
--    cache hit rate = cache_read tokens / input tokens (input includes cached tokens).
CREATE OR REPLACE TEMP VIEW efficiency AS
SELECT
    feature,
    count(*)                                                        AS requests,
    sum(input_tokens)                                               AS input_tokens,
    sum(cache_read_tokens)                                          AS cache_read_tokens,
    round(sum(cache_read_tokens) / NULLIF(sum(input_tokens), 0), 4) AS cache_hit_rate,
    count(*) FILTER (WHERE is_retry)                                AS retries,
    round(count(*) FILTER (WHERE is_retry) / count(*), 4)           AS retry_rate,
    COALESCE(sum(cost_usd) FILTER (WHERE is_retry), 0)::DECIMAL(38, 9) AS retry_spend_usd,
    count(*) FILTER (WHERE usage_source = 'missing')                AS missing_usage_requests
FROM llm_requests
GROUP BY feature
ORDER BY feature;
