-- The seed models, for Flink's SQL client: `flink-ml-predict sql-client sql/models.sql` turns
-- them into init.sql + a Python module (docker-compose's sql-client service does it at start).
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
  'provider' = 'bailian',
  'endpoint' = '${BAILIAN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-turbo',
  'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);

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
