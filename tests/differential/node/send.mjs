// Send one corpus message with Nodemailer's DEFAULT transport options (only host and port given) to
// each target, and print what each server answered as JSON: [{ok, response, accepted, rejected, ...}].
// Input on stdin: {"message": {from, to, cc, bcc, replyTo, subject, text, html, headers, attachments,
// messageId, date}, "targets": [{"host": "127.0.0.1", "port": 1025}, ...]}.
// Attachment "content" is base64 (decoded here to a Buffer), so binary parts survive JSON.
import nodemailer from "nodemailer";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const { message, targets } = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const mail = { ...message };
if (Array.isArray(mail.attachments)) {
  mail.attachments = mail.attachments.map((a) => ({ ...a, content: Buffer.from(a.content, "base64") }));
}

const results = [];
for (const { host, port } of targets) {
  const transport = nodemailer.createTransport({ host, port });
  try {
    const info = await transport.sendMail(mail);
    results.push({ ok: true, response: info.response, accepted: info.accepted, rejected: info.rejected,
      envelope: info.envelope });
  } catch (err) {
    results.push({ ok: false, code: err.code ?? null, command: err.command ?? null,
      responseCode: err.responseCode ?? null, response: err.response ?? null,
      rejected: err.rejected ?? null });
  } finally {
    transport.close();
  }
}
process.stdout.write(JSON.stringify(results));
