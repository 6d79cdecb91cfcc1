export { Tokenizer, type DecodeOptions, type EncodeOptions, type TokenizerSources } from './tokenizer.js';
export { IncrementalDetokenizer, type IncrementalDetokenizerOptions } from './incremental.js';
export { ChatTemplateError, type ChatMessage, type ChatTemplateOptions } from './chat-template.js';
export { TokenizerError } from './files.js';
