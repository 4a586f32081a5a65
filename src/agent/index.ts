/**
 * Search-R1's pieces around the agent loop: its prompt and observation texts, turns read as
 * actions, trajectories whose training sequences mask what the model did not write, the EM
 * rewards, and rule-written warm-up trajectories.
 */
export {
  SEARCH_R1_TEMPLATE, RAG_TEMPLATE, DIRECT_TEMPLATE, INVALID_ACTION_MESSAGE, QUESTION_SLOT, CONTEXT_SLOT,
  normalizeQuestion, buildAgentPrompt, buildDirectPrompt, buildRagPrompt, formatPassages, informationBlock, type PassageLike,
} from './prompt';
export {
  ACTION_STOPS, SEGMENT_ORIGINS, cutTurn, parseAction, newTrajectory, addSegment, finishTrajectory, responseText, transcriptText,
  tokenizeTrajectory, trajectorySequence,
  type ActionKind, type AgentAction, type SegmentOrigin, type Segment, type StopReason, type Trajectory,
} from './trajectory';
export {
  QA_REWARD_NAMES, QA_REWARDS, EM_FORMAT_DEFAULTS, responseAnswer, emReward, emFormatReward, isValidFormat, qaReward,
  type QaRewardName, type QaRewardFunction, type QaRollout, type FormatCheck, type EmFormatScores,
} from './rewards';
export { WARMUP_THINK, warmupTrajectories, warmupSequences, type WarmupOptions, type WarmupSet } from './warmup';
export { directMethod, ragMethod, type QaMethod, type QaOutput, type BaselineOptions, type RagOptions } from './methods';
export { Agent, type AgentRunOptions } from './agent';
export { resolveAgentOptions, turnSeed, type AgentOptions, type ResolvedAgentOptions } from './agent-options';
export type { AgentTurnEvent } from './rollout';
export { agentMethod, trajectoryOutput } from './agent-method';
