// imapflow (npm) against cmail-imapd, driven by tests/integration/imapflow_test.py.
//
// Usage: node client.js PORT USER PASSWORD
// Prints one JSON object per line on stdout: what it found, and {"step":"idling"} when it waits
// in IDLE for the test to deliver a message (through cmail-smtpd); then {"step":"exists",...}
// when imapflow's 'exists' event came, and {"step":"done"} at the end. Any failure: an
// {"error":...} line and exit status 1. Everything is bounded by a timer.
'use strict';
const { ImapFlow } = require('imapflow');

const [port, user, pass] = process.argv.slice(2);
const say = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const fail = (e) => {
  say({ error: String((e && e.stack) || e) });
  process.exit(1);
};
setTimeout(() => fail('timed out after 60 s'), 60000).unref();

async function main() {
  const client = new ImapFlow({
    host: '127.0.0.1', port: Number(port), secure: false, doSTARTTLS: false,
    auth: { user, pass }, logger: false, autoIdleDelay: 200,  // IDLE after 200 ms without a command
  });
  await client.connect();
  say({ step: 'capabilities', list: [...client.capabilities.keys()] });
  let lock = await client.getMailboxLock('INBOX');
  try {
    say({ step: 'opened', exists: client.mailbox.exists, uidValidity: String(client.mailbox.uidValidity) });
    const subjects = [];
    for await (const m of client.fetch('1:*', { envelope: true, flags: true, uid: true, source: true, bodyStructure: true })) {
      subjects.push({ uid: m.uid, subject: m.envelope.subject, seen: m.flags.has('\\Seen'),
                      size: m.source.length, type: m.bodyStructure.type });
    }
    say({ step: 'fetched', messages: subjects });
    await client.messageFlagsAdd('1', ['\\Flagged', '$Important']);
    const one = await client.fetchOne('1', { flags: true });
    say({ step: 'flagged', flags: [...one.flags].sort() });
    const list = await client.list();
    say({ step: 'list', mailboxes: list.map((b) => [b.path, b.specialUse || null]) });
  } finally {
    lock.release();
  }

  // With INBOX open and no command to send, imapflow enters IDLE by itself; wait until it has.
  const arrived = new Promise((resolve) => client.once('exists', resolve));
  const started = Date.now();
  while (!client.idling) {
    if (Date.now() - started > 10000) throw new Error('imapflow never entered IDLE');
    await new Promise((r) => setTimeout(r, 20));
  }
  say({ step: 'idling' });
  const ev = await arrived;
  say({ step: 'exists', count: ev.count, prevCount: ev.prevCount });

  lock = await client.getMailboxLock('INBOX');
  try {
    const last = await client.fetchOne('*', { envelope: true, uid: true });
    say({ step: 'new', subject: last.envelope.subject, uid: last.uid });
    await client.messageDelete(String(last.uid), { uid: true });
    say({ step: 'deleted', exists: client.mailbox.exists });
  } finally {
    lock.release();
  }
  await client.logout();
  say({ step: 'done' });
}

main().catch(fail);
