// Row 1's yardstick: the dialer a user would write on a job queue instead, in a fresh
// process. graphile-worker as its README shows it (run() with a taskList, one job per
// contact, jobs added with add_jobs); the task does the same work as the campaign tick:
// claim the contact, take a slot of the carrier trunk's budget (the same
// internal.take_carrier_slots), write the call record, dispatch the agent, wait for it in
// the room, dial with wait_until_answered through the real livekit-server-sdk, record the
// answer and settle the contact (internal.call_answered / call_finished).
//
// `queue_dialer.ts <db url> <livekit url> <key> <secret> <concurrency> <window s> <campaign id>...`
// prints `start` once the jobs are queued and the worker starts, then
// {"jobs", "ran", "dialed", "ms", "cpuMs", "queries"} when every job has run; with a window
// above 0, once that many seconds after `start` it has stopped taking jobs and the running ones
// have finished (graphile-worker's graceful stop). The jobs it never ran stay queued.
import process from "node:process";
import { Logger, makeWorkerUtils, run } from "graphile-worker";
import { AgentDispatchClient, RoomServiceClient, SipClient } from "livekit-server-sdk";
import { ParticipantInfo_Kind } from "@livekit/protocol";

const [dbUrl, lkUrl, apiKey, apiSecret, concurrencyArg, windowArg, ...campaigns] = Deno.args;
const concurrency = Number(concurrencyArg);
const windowMs = Number(windowArg) * 1000;
if (!(concurrency > 0) || !(windowMs >= 0)) throw new Error("bad concurrency or window");
const silent = new Logger(() => () => {});
const sip = new SipClient(lkUrl, apiKey, apiSecret);
const dispatch = new AgentDispatchClient(lkUrl, apiKey, apiSecret);
const rooms = new RoomServiceClient(lkUrl, apiKey, apiSecret);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

interface Contact {
  id: string;
  campaign_id: string;
  owner_id: string;
  e164: string;
  attempts: number;
  dials: number;
  phone_number_id: string;
  from_number: string;
  outbound_trunk_id: string;
  carrier: string;
  assistant_id: string;
  agent_name: string;
  ringing_timeout_sec: number;
  max_call_duration_sec: number;
  dnc: boolean;
}

const utils = await makeWorkerUtils({ connectionString: dbUrl, logger: silent });
let queries = 0;
try {
  await utils.migrate();
  const { rows: [{ count }] } = await utils.withPgClient((client) =>
    client.query(
      `select count(*)::int from graphile_worker.add_jobs(array(
         select json_populate_record(null::graphile_worker.job_spec,
                  json_build_object('identifier', 'dial', 'payload',
                    json_build_object('id', cc.id, 'carrier', coalesce(p.carrier_trunk, 'default'))))
         from public.campaign_calls cc join public.campaigns k on k.id = cc.campaign_id
           join public.phone_number p on p.id = k.phone_number_id
         where cc.campaign_id = any($1::uuid[]) and cc.status = 'queued'
         order by cc.next_attempt_at))`,
      [campaigns],
    )
  );
  const jobs = Number(count);
  let done = 0;
  let dialed = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => finish = resolve);
  console.log("start");
  const cpu = process.cpuUsage();
  const started = performance.now();
  const runner = await run({
    connectionString: dbUrl,
    concurrency,
    maxPoolSize: Math.min(concurrency, 20),
    noHandleSignals: true,
    pollInterval: 1000,
    logger: silent,
    crontab: "",
    taskList: {
      dial: async (payload, helpers) => {
        const q = async <T>(text: string, values: unknown[]) => {
          queries++;
          return (await helpers.withPgClient((c) => c.query(text, values))).rows as T[];
        };
        // A job that throws is retried by graphile-worker; only settled jobs count as done.
        const settle = () => {
          if (++done === jobs) finish();
        };
        {
          const { id, carrier } = payload as { id: string; carrier: string };
          const [{ slots }] = await q<{ slots: Date[] }>(
            `select internal.take_carrier_slots($1, 1, 1, 5) as slots`,
            [carrier],
          );
          // No slot within 5 s: fail the job, graphile-worker retries it with backoff.
          if (!slots.length) throw new Error("carrier budget used up");
          const [c] = await q<Contact>(
            `update public.campaign_calls cc set status = 'dialing', attempts = cc.attempts + 1,
               dials = cc.dials + 1, lease_until = now() + interval '2 minutes'
             from public.campaigns k join public.phone_number p on p.id = k.phone_number_id
               join public.assistant a on a.id = k.assistant_id
             where cc.id = $1 and cc.status = 'queued' and k.id = cc.campaign_id
             returning cc.id, cc.campaign_id, cc.owner_id, cc.e164, cc.attempts, cc.dials,
               p.id as phone_number_id, p.e164 as from_number, p.outbound_trunk_id,
               coalesce(p.carrier_trunk, 'default') as carrier, a.id as assistant_id,
               a.agent_name, k.ringing_timeout_sec, k.max_call_duration_sec,
               exists (select from public.do_not_call d
                       where d.owner_id = cc.owner_id and d.e164 = cc.e164) as dnc`,
            [id],
          );
          if (!c || c.dnc) return settle();
          const slot = new Date(slots[0]).getTime();
          const room = `cc-${c.id}-${c.dials}`;
          const identity = `sip-${room}`;
          const [call] = await q<{ id: string }>(
            `insert into public.outbound_calls (owner_id, assistant_id, phone_number_id,
               campaign_id, campaign_call_id, attempt, from_number, to_number, room_name,
               participant_identity, outbound_trunk_id, carrier_trunk)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) returning id`,
            [
              c.owner_id,
              c.assistant_id,
              c.phone_number_id,
              c.campaign_id,
              c.id,
              c.attempts,
              c.from_number,
              c.e164,
              room,
              identity,
              c.outbound_trunk_id,
              c.carrier,
            ],
          );
          const metadata = JSON.stringify({ callId: call.id, campaignCallId: c.id, to: c.e164 });
          const d = await dispatch.createDispatch(room, c.agent_name, { metadata });
          let agent = null;
          const until = Date.now() + 5000;
          for (let pause = 25; !agent && Date.now() < until; pause = Math.min(pause * 2, 250)) {
            const ps = await rooms.listParticipants(room).catch(() => []);
            agent = ps.find((p) => p.kind === ParticipantInfo_Kind.AGENT) ?? null;
            if (!agent) await sleep(pause);
          }
          if (!agent) {
            await dispatch.deleteDispatch(d.id, room).catch(() => {});
            await q(`delete from public.outbound_calls where id = $1`, [call.id]);
            await q(
              `update public.campaign_calls set status = 'queued', attempts = attempts - 1
               where id = $1`,
              [c.id],
            );
            throw new Error("no agent joined");
          }
          await sleep(slot - Date.now());
          const dialedAt = new Date();
          try {
            const p = await sip.createSipParticipant(c.outbound_trunk_id, c.e164, room, {
              participantIdentity: identity,
              participantName: c.e164,
              participantMetadata: metadata,
              participantAttributes: { callId: call.id, campaignCallId: c.id },
              fromNumber: c.from_number,
              waitUntilAnswered: true,
              ringingTimeout: c.ringing_timeout_sec,
              maxCallDuration: c.max_call_duration_sec,
              krispEnabled: true,
            });
            await q(
              `update public.outbound_calls set status = 'in_progress', outcome = 'answered',
                 answered_at = now(), dispatch_id = $2, dialed_at = $3, dial_returned_at = now(),
                 participant_id = $4, sip_call_id = $5, agent_identity = $6,
                 agent_joined_at = $3
               where id = $1`,
              [call.id, d.id, dialedAt, p.participantId, p.sipCallId, agent.identity],
            );
            await q(`select internal.call_answered($1)`, [call.id]);
            dialed++;
          } catch (e) {
            await q(
              `update public.outbound_calls set status = 'failed', outcome = 'failed',
                 ended_at = now(), dispatch_id = $2, dialed_at = $3, dial_returned_at = now(),
                 error = $4
               where id = $1`,
              [call.id, d.id, dialedAt, String(e)],
            );
            await q(`select internal.call_finished($1)`, [call.id]);
          }
          settle();
        }
      },
    },
  });
  if (windowMs > 0) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      finished,
      new Promise((r) => timer = setTimeout(r, windowMs - (performance.now() - started))),
    ]);
    clearTimeout(timer);
    // Stops taking jobs and waits for the running ones.
    await runner.stop();
  } else if (jobs > 0) await finished;
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  console.log(JSON.stringify({
    jobs,
    ran: done,
    dialed,
    ms,
    cpuMs: (used.user + used.system) / 1000,
    queries,
  }));
  if (windowMs === 0) await runner.stop();
} finally {
  await utils.release();
}
