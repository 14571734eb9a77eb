// Docent's /v1 API called with OpenAI's own Node.js client (npm `openai`), as a JavaScript tool would.
// Run: node tests/js/openai_client.mjs BASE_URL KEY MODEL QUESTION — prints one JSON object with what it got.
import OpenAI from "openai";

const [baseURL, apiKey, model, question] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0, timeout: 180_000 });

const models = (await client.models.list()).data.map((m) => m.id);
const stream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: question }],
  stream: true,
});
let text = "";
let docent = null;
let finish = null;
for await (const chunk of stream) {
  const choice = chunk.choices[0];
  if (choice?.delta?.content) text += choice.delta.content;
  if (choice?.finish_reason) {
    finish = choice.finish_reason;
    docent = chunk.docent;
  }
}
const embedding = await client.embeddings.create({ model, input: ["Descale the kettle."] });
let notFound = null;
try {
  await client.chat.completions.create({ model: "kb:missing", messages: [{ role: "user", content: question }] });
} catch (error) {
  notFound = { status: error.status, code: error.code };
}
console.log(JSON.stringify({ models, text, finish, docent, dimension: embedding.data[0].embedding.length, notFound }));
