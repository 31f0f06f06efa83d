// The question-answer pipeline: what the CLI and the extension call.
export { ask, explain, tokenizerFor, AskError, type AnswerEngine, type AskContext, type AskOptions, type AskProgress, type AskResult } from './ask';
export { questionPrompt, contextTokenizer, neutralizeSpecialTokens, type QuestionPrompt } from './prompt';
