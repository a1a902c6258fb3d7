/** Why: judge/ answers "where did it go, and how bad is it" for a flow's detections. */
export type { GeoLookup } from './destination';
export { judgeDestination } from './destination';
export { SEVERITY_TABLE, LOW_CONFIDENCE, bumpSeverity, maxSeverity, sensitivityOf, severityOf } from './severity';
export type { SensitivityClass, SeverityBumps } from './severity';
export { registrableDomain } from './domain';
export { isLocalAddress } from './local-address';
export { compileTrackers, trackerList, validateTrackerEntries, SHIPPED_TRACKERS, TRACKER_CATEGORIES, TrackerListError } from './trackers';
export type { TrackerEntry, TrackerList, TrackerCategory } from './trackers';
export { EU_EEA, EU_ADEQUATE, homeRegionOf, isCountryCode, isCrossBorder } from './region';
export type { HomeRegion } from './region';
export { homeCountryOf } from './home';
export type { HomeCountry, HomeSource } from './home';
export { parseRules, matchRule, RulesError } from './rules';
export type { Rule, RuleSubject } from './rules';
export { alertSentence, alertSentenceOf, listTypes, SHORT_LABEL } from './sentence';
