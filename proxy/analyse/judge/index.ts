/** Why: judge/ answers "where did it go, and how bad is it" for a flow's detections. */
export type { GeoLookup } from './destination';
export { judgeDestination } from './destination';
export { SEVERITY_TABLE, LOW_CONFIDENCE, maxSeverity, sensitivityOf, severityOf } from './severity';
export type { SensitivityClass } from './severity';
