/** Messages between the main thread and the analysis worker (structured-cloned). */
import type { AnalysisResult, DeviceProfile } from '../analyse/types';
import type { Flow } from '../flow';

export interface WorkerJob {
  jobId: number;
  flow: Flow;
  profile: DeviceProfile | null;
}

export type WorkerReply =
  | { jobId: number; ok: true; result: AnalysisResult; omittedFields: number }
  | { jobId: number; ok: false; error: string };
