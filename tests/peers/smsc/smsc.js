#!/usr/bin/env node
// A scriptable SMPP 3.4 SMSC (the npm package `smpp`) for campaignd's smpp
// provider tests and benchmark. It listens on 127.0.0.1 only, on a free
// port, and prints that port as the first line of stdout.
//
//   node smsc.js [--password PW] [--records FILE] [--no-dlr] [--delay-ms N]
//                [--throttle-first N] [--drop-after K]
//
// --password PW      the only password a bind_transceiver is accepted with
//                    (default "secret"); any other gets ESME_RBINDFAIL.
// --records FILE     appends one JSON line per submit_sm received (the
//                    bench leaves it out: counting only).
// --no-dlr           no delivery receipt after an accepted submit_sm.
// --delay-ms N       answers each submit_sm N ms after it arrived, so that
//                    a client can fill its window (default 0: at once).
// --throttle-first N answers the first N submit_sm with ESME_RTHROTTLED.
// --drop-after K     answers K submit_sm, then drops the connection when
//                    the next one arrives (it stays unanswered); once.
//
// Control lines on stdin (answers are JSON lines on stdout):
//   stats                  {"stats": {...counters, max_outstanding...}}
//   mo FROM TO TEXT...     a mobile-originated deliver_sm to every session
//   dlr_raw TEXT...        a deliver_sm with esm_class 0x04 and TEXT as its
//                          short_message (a malformed receipt, say)
//   enquire                an enquire_link to every session
//   throttle N             the next N submit_sm get ESME_RTHROTTLED
//   status N HEX           the next N submit_sm get command_status HEX
//   drop                   closes every session now
//   raw HEX                writes HEX as bytes to every session (a broken
//                          PDU, say)
//   dlr_stat STAT          the stat: of later receipts (default DELIVRD)
//   drop_after K           like --drop-after, from now on
// Every control line is answered with {"ok": "<command>"} once done, so a
// test can wait for it.
'use strict';

const fs = require('fs');
const readline = require('readline');
const smpp = require('smpp');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf(name);
  if (i < 0) return def;
  return args[i + 1];
}
const flag = (name) => args.indexOf(name) >= 0;

const password = opt('--password', 'secret');
const recordsPath = opt('--records', '');
const sendDlr = !flag('--no-dlr');
const delayMs = parseInt(opt('--delay-ms', '0'), 10);
let throttleLeft = parseInt(opt('--throttle-first', '0'), 10);
let dropAfter = parseInt(opt('--drop-after', '-1'), 10);
let statusLeft = 0;
let statusValue = 0;
let dlrStat = 'DELIVRD';

const records = recordsPath ? fs.openSync(recordsPath, 'a') : null;
const stats = {
  binds_ok: 0,
  binds_refused: 0,
  submits: 0,           // every submit_sm received
  accepted: 0,          // answered with status 0
  throttled: 0,
  failed: 0,            // answered with another status
  unanswered: 0,        // dropped with the connection
  outstanding: 0,
  max_outstanding: 0,
  dlrs_sent: 0,
  deliver_resp_ok: 0,
  deliver_resp_error: 0,
  deliver_resp_last_error: 0,  // the command_status of the last error
  enquire_links: 0,     // received from the client
  enquire_link_resps: 0,  // the client's answers to ours
  unbinds: 0,
  drops: 0,
  sessions: 0,
};
const sessions = new Set();
let nextId = 1;
let nextRef = 1;

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function hex(buf) {
  return Buffer.isBuffer(buf) ? buf.toString('hex') : '';
}

function receiptText(id, stat) {
  const now = new Date();
  const p = (n) => String(n).padStart(2, '0');
  const date = p(now.getUTCFullYear() % 100) + p(now.getUTCMonth() + 1) +
      p(now.getUTCDate()) + p(now.getUTCHours()) + p(now.getUTCMinutes());
  const err = stat === 'DELIVRD' ? '000' : '001';
  return `id:${id} sub:001 dlvrd:${stat === 'DELIVRD' ? '001' : '000'} ` +
      `submit date:${date} done date:${date} stat:${stat} err:${err} text:`;
}

function deliver(session, fields) {
  session.deliver_sm(fields, (resp) => {
    if (resp.command_status === 0) {
      stats.deliver_resp_ok++;
    } else {
      stats.deliver_resp_error++;
      stats.deliver_resp_last_error = resp.command_status;
    }
  });
}

function sendReceipt(session, id, to, from) {
  stats.dlrs_sent++;
  deliver(session, {
    source_addr: to,
    source_addr_ton: 1,
    source_addr_npi: 1,
    destination_addr: from,
    esm_class: 0x04,
    short_message: receiptText(id, dlrStat),
    receipted_message_id: id,
    message_state: dlrStat === 'DELIVRD' ? 2 : 5,
  });
}

function onSubmit(session, pdu) {
  stats.submits++;
  if (session.dropping) return;
  if (dropAfter === 0) {
    dropAfter = -1;
    session.dropping = true;
    stats.drops++;
    session.destroy();
    return;
  }
  if (dropAfter > 0) dropAfter--;
  stats.outstanding++;
  session.outstanding++;
  stats.max_outstanding = Math.max(stats.max_outstanding, stats.outstanding);
  let status = 0;
  if (throttleLeft > 0) {
    throttleLeft--;
    status = smpp.ESME_RTHROTTLED;
  } else if (statusLeft > 0) {
    statusLeft--;
    status = statusValue;
  }
  const id = status === 0 ? 'smsc-' + String(nextId++).padStart(8, '0') : '';
  if (records !== null) {
    const sm = pdu.short_message || {};
    const udh = Array.isArray(sm.udh) ? sm.udh.map(hex) : [];
    fs.writeSync(records, JSON.stringify({
      seq: pdu.sequence_number,
      status: status,
      message_id: id,
      source_addr: pdu.source_addr,
      source_addr_ton: pdu.source_addr_ton,
      source_addr_npi: pdu.source_addr_npi,
      destination_addr: pdu.destination_addr,
      dest_addr_ton: pdu.dest_addr_ton,
      dest_addr_npi: pdu.dest_addr_npi,
      esm_class: pdu.esm_class,
      data_coding: pdu.data_coding,
      registered_delivery: pdu.registered_delivery,
      udh: udh,
      text: typeof sm.message === 'string' ? sm.message : '',
    }) + '\n');
  }
  const answer = () => {
    stats.outstanding--;
    session.outstanding--;
    if (session.closed) {
      stats.unanswered++;
      return;
    }
    if (status === 0) {
      stats.accepted++;
    } else if (status === smpp.ESME_RTHROTTLED) {
      stats.throttled++;
    } else {
      stats.failed++;
    }
    session.send(pdu.response({command_status: status, message_id: id}));
    if (status === 0 && sendDlr) {
      sendReceipt(session, id, pdu.destination_addr, pdu.source_addr);
    }
  };
  if (delayMs > 0) {
    setTimeout(answer, delayMs);
  } else {
    answer();
  }
}

const server = smpp.createServer({debug: false}, (session) => {
  session.outstanding = 0;
  session.closed = false;
  session.dropping = false;
  session.bound = false;
  stats.sessions++;
  sessions.add(session);
  session.on('bind_transceiver', (pdu) => {
    if (pdu.password !== password) {
      stats.binds_refused++;
      session.send(pdu.response({command_status: smpp.ESME_RBINDFAIL}));
      return;
    }
    stats.binds_ok++;
    session.bound = true;
    session.send(pdu.response({system_id: 'test-smsc'}));
  });
  session.on('submit_sm', (pdu) => onSubmit(session, pdu));
  session.on('enquire_link', (pdu) => {
    stats.enquire_links++;
    session.send(pdu.response());
  });
  session.on('unbind', (pdu) => {
    stats.unbinds++;
    session.send(pdu.response());
    session.close();
  });
  session.on('close', () => {
    session.closed = true;
    sessions.delete(session);
  });
  session.on('error', () => {
    session.closed = true;
    sessions.delete(session);
  });
});

server.listen(0, '127.0.0.1', () => {
  out(server.address().port);
});

const rl = readline.createInterface({input: process.stdin});
rl.on('line', (line) => {
  const words = line.trim().split(/\s+/);
  const cmd = words[0];
  const bound = [...sessions].filter((s) => s.bound && !s.closed);
  switch (cmd) {
    case 'stats':
      out({stats: stats});
      return;
    case 'mo':
      for (const s of bound) {
        deliver(s, {
          source_addr: words[1],
          source_addr_ton: 1,
          source_addr_npi: 1,
          destination_addr: words[2],
          esm_class: 0,
          short_message: words.slice(3).join(' '),
        });
      }
      break;
    case 'dlr_raw':
      for (const s of bound) {
        deliver(s, {
          source_addr: '15550000000',
          destination_addr: 'TEST',
          esm_class: 0x04,
          short_message: words.slice(1).join(' '),
        });
      }
      break;
    case 'enquire':
      for (const s of bound) {
        s.enquire_link({}, () => stats.enquire_link_resps++);
      }
      break;
    case 'throttle':
      throttleLeft = parseInt(words[1], 10);
      break;
    case 'status':
      statusLeft = parseInt(words[1], 10);
      statusValue = parseInt(words[2], 16);
      break;
    case 'drop':
      for (const s of sessions) {
        stats.drops++;
        s.destroy();
      }
      break;
    case 'raw':
      for (const s of bound) s.socket.write(Buffer.from(words[1], 'hex'));
      break;
    case 'drop_after':
      dropAfter = parseInt(words[1], 10);
      break;
    case 'dlr_stat':
      dlrStat = words[1];
      break;
    case '':
      return;
    default:
      out({error: 'unknown command ' + cmd});
      return;
  }
  out({ok: cmd});
});
rl.on('close', () => {
  for (const s of sessions) s.destroy();
  server.close();
  process.exit(0);
});
