"""Seed-like scripts shared by the tests of the SQL text layer."""

from __future__ import annotations

SEED_BAILIAN = """\
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
'provider'='bailian',
'endpoint'='<base_url>/compatible-mode/v1/chat/completions', -- chat/completions模型任務連接埠
'api-key' = '<YOUR KEY>',
'model'='qwen-turbo', -- 通義千問qwen-turbo模型
'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);
CREATE TEMPORARY TABLE print_sink(
id BIGINT,
movie_name VARCHAR,
predict_label VARCHAR,
actual_label VARCHAR
) WITH (
'connector' = 'print', -- print連接器
'logger' = 'true' -- 控制台顯示計算結果
);
CREATE TEMPORARY VIEW movie_comment(id, movie_name, user_comment, actual_label)
AS VALUES (1, '好東西', '最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。', 'positive'), (2, '水餃皇后', '乏善可陳', 'negative');
INSERT INTO print_sink
SELECT id, movie_name, content as predict_label, actual_label
FROM ML_PREDICT(
TABLE movie_comment,
MODEL ai_analyze_sentiment, -- 註冊的通義千問qwen-turbo模型
DESCRIPTOR(user_comment));
"""

SEED_QWEN_MASKING = """\
-- Seed 000 (Qwen): mask the last four digits of ID numbers.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
-- Create chat model
CREATE MODEL ai_data_desensitization
INPUT (input STRING)
OUTPUT (content STRING)
WITH (
  'provider' = 'qwen',
  'endpoint' = '${QWEN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-plus',
  'system-prompt' = '将内容中的身份证号 后四位用*号代替。'

);

CREATE TEMPORARY VIEW user_info(id, user_name,  info, actual_label)
AS VALUES
  (1, 'aaa', '我的名字叫 码界探索: 412721199803134419.', 'positive');

CREATE TEMPORARY TABLE print_sink(
  id BIGINT,
  user_name VARCHAR,
  desensitized_data VARCHAR,
  actual_label VARCHAR
) WITH (
  'connector' = 'print'
);

INSERT INTO print_sink
SELECT id, user_name, content as desensitized_data, actual_label
FROM ML_PREDICT(
  TABLE user_info,
  MODEL ai_data_desensitization,
  DESCRIPTOR(info));
"""

SEED_BAILIAN_FILE_HEADER = """\
-- Seed 002 (Bailian / Model Studio): sentiment of movie comments with qwen-turbo.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
-- The print table keeps the seed's 'logger' = 'true' (an option of Alibaba Cloud's Flink):
-- the runner drops it with a warning, because open-source Flink rejects it.
"""

SEED_OPENAI_SENTIMENT = """\
-- Seed 003 (OpenAI): sentiment of movie comments.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
    'provider'='openai',
    'endpoint'='${OPENAI_ENDPOINT}',
    'api-key' = '${OPENAI_API_KEY}',
    'model'='gpt-3.5-turbo',
    'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);

CREATE TEMPORARY VIEW movie_comment(id, movie_name,  user_comment, actual_label)
AS VALUES
  (1, '好东西', '最爱小孩子猜声音那段,算得上看过的电影里相当浪漫的叙事了。很温和也很有爱。', 'positive');

CREATE TEMPORARY TABLE print_sink(
  id BIGINT,
  movie_name VARCHAR,
  predicit_label VARCHAR,
  actual_label VARCHAR
) WITH (
  'connector' = 'print'
);

INSERT INTO print_sink
SELECT id, movie_name, content as predicit_label, actual_label
FROM ML_PREDICT(
  TABLE movie_comment,
  MODEL ai_analyze_sentiment,
  DESCRIPTOR(user_comment));
"""

SEED_OPENAI = """\
-- OpenAI chat model, named ML_PREDICT arguments; this header has a ; in it
SET 'parallelism.default' = '1';
SET 'pipeline.name' = 'openai; sentiment';

CREATE TEMPORARY MODEL IF NOT EXISTS `my_cat`.`my_db`.`gpt`
INPUT (`input` STRING COMMENT 'the user''s text')
OUTPUT (`content` STRING, `http-status-code` INT)
COMMENT 'chat; completions'
WITH (
  'provider' = 'openai',
  'endpoint' = 'https://api.openai.com/v1/chat/completions',
  'api-key' = '${OPENAI_API_KEY}',
  'model' = 'gpt-4o-mini'
);

/* the source: ; inside a block comment */
CREATE TEMPORARY VIEW reviews(id, txt) AS VALUES (1, 'great; really'), (2, 'it''s bad');

CREATE TEMPORARY TABLE out_sink (id INT, label STRING) WITH ('connector' = 'blackhole');

BEGIN STATEMENT SET;
INSERT INTO out_sink
SELECT id, content FROM ML_PREDICT(
  INPUT => TABLE reviews,
  MODEL => MODEL `my_cat`.`my_db`.`gpt`,
  ARGS => DESCRIPTOR(txt),
  CONFIG => MAP['async', 'true', 'timeout', '30s']);
INSERT INTO out_sink SELECT id, 'none' FROM reviews;
END;
RESET 'pipeline.name';
RESET;
SELECT 1 -- trailing comment without newline and without ;"""

SEED_EMBEDDING = """\
CREATE MODEL embedder
INPUT (`input` STRING)
OUTPUT (`embedding` ARRAY<FLOAT>)
WITH ('provider' = 'openai', 'task' = 'embeddings', 'model' = 'text-embedding-3-small');

CREATE TABLE vectors (id INT, v ARRAY<FLOAT>) WITH ('connector' = 'print');
CREATE TABLE lengths (id INT, n INT) WITH ('connector' = 'print');

EXECUTE STATEMENT SET
BEGIN
  INSERT INTO vectors SELECT id, embedding FROM ML_PREDICT(TABLE (SELECT 1 AS id, 'a;b' AS s), MODEL embedder, DESCRIPTOR(s));
  -- a comment between the inserts; with a semicolon
  INSERT INTO lengths SELECT 1, CHAR_LENGTH('x;y');
END;

EXPLAIN PLAN FOR SELECT * FROM ML_PREDICT(TABLE vectors, MODEL embedder, DESCRIPTOR(id));
"""
