-- Seed 002 (Bailian / Model Studio): sentiment of movie comments with qwen-turbo.
-- Unchanged from the seed except the endpoint and the key, which come from the environment.
-- The print table keeps the seed's 'logger' = 'true' (an option of Alibaba Cloud's Flink):
-- the runner drops it with a warning, because open-source Flink rejects it.
CREATE MODEL ai_analyze_sentiment
INPUT (`input` STRING)
OUTPUT (`content` STRING)
WITH (
'provider'='bailian',
'endpoint'='${BAILIAN_ENDPOINT}', -- chat/completions模型任務連接埠
'api-key' = '${DASHSCOPE_API_KEY}',
'model'='qwen-turbo', -- 通義千問qwen-turbo模型
'system-prompt' = 'Classify the text below into one of the following labels: [positive, negative, neutral, mixed]. Output only the label.'
);
--建立臨時結果表
CREATE TEMPORARY TABLE print_sink(
id BIGINT,
movie_name VARCHAR,
predict_label VARCHAR,
actual_label VARCHAR
) WITH (
'connector' = 'print', -- print連接器
'logger' = 'true' -- 控制台顯示計算結果
);
-- 建立臨時資料檢視構造測試資料
-- | id | movie_name | comment | actual_label |
-- | 1 | 好東西 | 最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。| POSITIVE |
-- | 2 | 水餃皇后 | 乏善可陳 | NEGATIVE |
CREATE TEMPORARY VIEW movie_comment(id, movie_name, user_comment, actual_label)
AS VALUES (1, '好東西', '最愛小孩子猜聲音那段,算得上看過的電影裡相當浪漫的敘事了。很溫和也很有愛。', 'positive'), (2, '水餃皇后', '乏善可陳', 'negative');
INSERT INTO print_sink
SELECT id, movie_name, content as predict_label, actual_label
FROM ML_PREDICT(
TABLE movie_comment,
MODEL ai_analyze_sentiment, -- 註冊的通義千問qwen-turbo模型
DESCRIPTOR(user_comment));
