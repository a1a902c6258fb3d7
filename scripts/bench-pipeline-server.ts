/**
 * The phonehome side of bench:pipeline, in its own process like a user's `phonehome start`: the real
 * startPhonehome with analysis on (full pipeline) or off (recording only). Prints its ports as JSON.
 * Usage: node dist/scripts/bench-pipeline-server.js '{"dataDir":"…","analysis":true[,"queueLimit":N]}'
 */
import { startPhonehome } from '../proxy/app';

async function main(): Promise<void> {
  const opts = JSON.parse(process.argv[2] ?? '{}') as { dataDir: string; analysis: boolean; queueLimit?: number };
  const app = await startPhonehome({
    dataDir: opts.dataDir, listenHost: '127.0.0.1', port: 0, dashboardPort: 0, analysis: opts.analysis, log: () => {},
    allowLoopbackTargets: true, // the benchmark's origin is on loopback
    pipeline: opts.queueLimit ? { queueLimit: opts.queueLimit } : undefined,
  });
  process.stdout.write(JSON.stringify({ proxyPort: app.proxyPort, dashboardPort: app.live.dashboard?.port, dashboardToken: app.dashboardToken, analysisTid: app.pipeline?.analysisThreadId() }) + '\n');
  const stop = () => void app.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack}\n`);
  process.exit(1);
});
