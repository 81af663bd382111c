-- Seed 004 (qwen-long): questions about documents, answers streamed.
-- Upload the document first; the command prints its file id:
--   flink-ml-predict upload report.pdf --endpoint "$QWEN_ENDPOINT" --wait
--   export QWEN_LONG_FILE_ID=file-fe-...
-- Each row pairs a document (a fileid:// reference, or the text itself) with a question; the
-- request is seed 004's: the system prompt, the document's system message, then the question.
CREATE TEMPORARY MODEL document_qa
INPUT (`doc` STRING, `question` STRING)
OUTPUT (`content` STRING, `error-string` STRING, `prompt-tokens` INT, `completion-tokens` INT)
WITH (
  'provider' = 'qwen',
  'endpoint' = '${QWEN_ENDPOINT}',
  'api-key' = '${DASHSCOPE_API_KEY}',
  'model' = 'qwen-long',
  'system-prompt' = 'You are a helpful assistant.',
  'document-column' = 'doc',
  'stream' = 'true',
  'temperature' = '0.3'
);

CREATE TEMPORARY VIEW questions(id, doc, question) AS VALUES
  (1, 'fileid://${QWEN_LONG_FILE_ID}', '这篇文章讲了什么?'),
  (2, 'fileid://${QWEN_LONG_FILE_ID}', '文中提到了哪些模型?'),
  (3, '大型语言模型(llm)已经彻底改变了人工智能领域,使以前被认为是人类独有的自然语言处理任务成为可能...',
      '文章讲了什么?');

CREATE TEMPORARY TABLE print_sink (
  id INT,
  question STRING,
  answer STRING,
  error STRING,
  prompt_tokens INT
) WITH (
  'connector' = 'print'
);

-- A first answer about a document waits for its parsing: give the operator time for it.
INSERT INTO print_sink
SELECT id, question, content, `error-string`, `prompt-tokens`
FROM ML_PREDICT(TABLE questions, MODEL document_qa, DESCRIPTOR(doc, question),
                MAP['timeout', '10min']);
