-- Structured extraction (seed 002's movie comments): a label, a confidence and keywords in typed
-- columns, from two input columns through a prompt template, with the prompt's token count.
-- The OUTPUT columns are the answer's JSON Schema (sent as response_format json_schema, strict);
-- each answer is validated and converted to the column types, and asked again when it does not fit.
--
--   BAILIAN_ENDPOINT=https://dashscope-intl.aliyuncs.com/compatible-mode/v1/chat/completions \
--   DASHSCOPE_API_KEY=sk-... flink-ml-predict run sql/structured_review_extraction.sql
--
-- or, without a key, against the demo server (rule-based answers, not a model):
--
--   flink-ml-predict demo-server --port 8000 &
--   BAILIAN_ENDPOINT=http://127.0.0.1:8000/compatible-mode/v1/chat/completions \
--   DASHSCOPE_API_KEY=demo flink-ml-predict run sql/structured_review_extraction.sql
--
-- qwen-plus and qwen-flash take json_schema; for models that only know json_object (qwen-turbo)
-- add 'output-format' = 'json-object'.
CREATE MODEL review_extraction
INPUT (movie_name STRING, user_comment STRING)
OUTPUT (
  label STRING COMMENT 'positive, negative, neutral or mixed',
  confidence DOUBLE,
  keywords ARRAY<STRING>,
  `prompt-tokens` INT
)
WITH (
  'provider' = 'bailian',
  'endpoint' = '${BAILIAN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-plus',
  'system-prompt' = 'Extract the sentiment of the movie comment, how confident you are (0 to 1) and up to three keywords.',
  'prompt-template' = '電影:{movie_name}\n評論:{user_comment}'
);

CREATE TEMPORARY TABLE print_sink (
  id BIGINT,
  movie_name STRING,
  label STRING,
  confidence DOUBLE,
  keywords ARRAY<STRING>,
  prompt_tokens INT,
  actual_label STRING
) WITH (
  'connector' = 'print'
);

CREATE TEMPORARY VIEW movie_comment(id, movie_name, user_comment, actual_label)
AS VALUES (1, '好東西', '最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。', 'positive'), (2, '水餃皇后', '乏善可陳', 'negative');

INSERT INTO print_sink
SELECT id, movie_name, label, confidence, keywords, `prompt-tokens`, actual_label
FROM ML_PREDICT(
  TABLE movie_comment,
  MODEL review_extraction,
  DESCRIPTOR(movie_name, user_comment));
