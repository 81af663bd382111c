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
