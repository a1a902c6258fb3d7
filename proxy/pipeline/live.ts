/**
 * Composes what `phonehome start` runs next to the proxy: the analysis pipeline (fed by the proxy's
 * onFlow) and the dashboard server. Kept apart from proxy/app.ts so that the proxy side stays a
 * single call: `live.onFlow(flow)` after each stored flow.
 */
import { startDashboard, DashboardHandle, DashboardOptions, SetupInfo } from '../../dashboard/server';
import type { Flow } from '../flow';
import type { Store } from '../store';
import { AnalysisPipeline, PipelineOptions } from '.';
import { Broadcaster } from './broadcaster';
import type { ProfileAssignments } from './profiles';

export interface LiveOptions {
  store: Store;
  /** null: no dashboard (e.g. benchmarks of the proxy alone). */
  dashboard: { host?: string; port: number; token?: string; tokenFile?: string; ws?: DashboardOptions['ws'] } | null;
  profiles?: ProfileAssignments;
  setupInfo?: SetupInfo;
  /** false: record only (benchmark baseline); flows stay pending and are analysed on a later start. */
  analysis?: boolean;
  pipeline?: Partial<Omit<PipelineOptions, 'store' | 'broadcaster'>>;
  log?(message: string): void;
}

export interface LiveServices {
  pipeline: AnalysisPipeline | null;
  broadcaster: Broadcaster;
  dashboard: DashboardHandle | null;
  /** Hand each stored flow (id set) here; returns at once. */
  onFlow(flow: Flow): void;
  close(): Promise<void>;
}

export async function startLive(opts: LiveOptions): Promise<LiveServices> {
  const broadcaster = new Broadcaster();
  for (const [ip, profile] of opts.profiles?.devices ?? []) opts.store.devices.setProfile(ip, profile);
  const pipeline =
    opts.analysis === false
      ? null
      : new AnalysisPipeline({ ...opts.pipeline, store: opts.store, broadcaster, defaultProfile: opts.profiles?.defaultProfile ?? null, log: opts.log });
  let dashboard: DashboardHandle | null = null;
  try {
    if (opts.dashboard) {
      dashboard = await startDashboard({
        ...opts.dashboard, store: opts.store, broadcaster, setupInfo: opts.setupInfo, log: opts.log,
        reanalyse: pipeline ? (clientIp) => pipeline.reanalyse(clientIp) : undefined,
      });
    }
    // The first alerts are as fast as the later ones: the worker is warm before start says it is ready.
    await pipeline?.ready();
  } catch (err) {
    await dashboard?.close();
    await pipeline?.close();
    throw err;
  }
  return {
    pipeline,
    broadcaster,
    dashboard,
    onFlow: (flow) => pipeline?.submit(flow),
    async close() {
      await dashboard?.close();
      await pipeline?.close();
    },
  };
}
