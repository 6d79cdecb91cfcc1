/** Chat templates rendered with @huggingface/jinja, with the variables transformers passes. */
import { Template } from '@huggingface/jinja';
import { TokenizerError, isObject } from './files.js';

export interface ChatMessage {
  role: string;
  content?: unknown;
  [field: string]: unknown;
}

export interface ChatTemplateOptions {
  /** Append the header that opens the assistant's turn (HF add_generation_prompt). Default false. */
  addGenerationPrompt?: boolean;
  /** Tool schemas (JSON objects), passed as `tools`; none gives `tools = none` as in transformers. */
  tools?: readonly unknown[];
  /** Retrieval documents, passed as `documents`. */
  documents?: readonly unknown[];
  /** Any other template variable, as apply_chat_template's **kwargs (e.g. enable_thinking: false). */
  [variable: string]: unknown;
}

/** The template could not be parsed, or failed or called raise_exception while rendering. */
export class ChatTemplateError extends TokenizerError {
  override name = 'ChatTemplateError';
}

interface Source {
  text: string;
  /** File (and field) it came from, for errors. */
  label: string;
  compiled?: Template;
}

/** One template, or several named ones (tokenizer_config's list form) of which "default" is used. */
export class ChatTemplates {
  private constructor(private readonly sources: Map<string, Source>) {}

  /** From tokenizer_config's `chat_template` (a string or [{name, template}]) or a separate file's text. */
  static parse(value: unknown, label: string): ChatTemplates {
    if (typeof value === 'string') return new ChatTemplates(new Map([['default', { text: value, label }]]));
    if (!Array.isArray(value)) throw new TokenizerError(`${label}: must be a string or a list of {name, template}`);
    const sources = new Map<string, Source>();
    value.forEach((entry, i) => {
      if (!isObject(entry) || typeof entry.name !== 'string' || typeof entry.template !== 'string') {
        throw new TokenizerError(`${label}[${i}]: expected {"name": string, "template": string}`);
      }
      sources.set(entry.name, { text: entry.template, label: `${label} "${entry.name}"` });
    });
    return new ChatTemplates(sources);
  }

  /** transformers' choice: "tool_use" when tools are given and it exists, else "default". */
  private pick(withTools: boolean): Source {
    const source = (withTools && this.sources.get('tool_use')) || this.sources.get('default');
    if (!source) {
      const [first] = this.sources.values();
      const names = [...this.sources.keys()].map((n) => `"${n}"`).join(', ');
      throw new TokenizerError(`${first?.label ?? 'chat_template'}: no template named "default" among ${names}`);
    }
    return source;
  }

  render(messages: readonly ChatMessage[], options: ChatTemplateOptions, specialTokens: Record<string, string>): string {
    checkMessages(messages);
    const { addGenerationPrompt = false, tools, documents, ...extra } = options;
    const source = this.pick(tools !== undefined && tools.length > 0);
    if (!source.compiled) {
      try {
        source.compiled = new Template(source.text);
      } catch (e) {
        throw new ChatTemplateError(`${source.label}: cannot parse the chat template (${(e as Error).message})`);
      }
    }
    // raise_exception is @huggingface/jinja's own (it throws the template's message, as HF's does).
    const variables = {
      messages,
      tools: tools ?? null,
      documents: documents ?? null,
      add_generation_prompt: addGenerationPrompt,
      ...specialTokens,
      ...extra,
    };
    try {
      return source.compiled.render(variables);
    } catch (e) {
      throw new ChatTemplateError(`${source.label}: chat template failed: ${(e as Error).message}`);
    }
  }
}

function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages)) throw new TokenizerError('applyChatTemplate: messages must be an array');
  messages.forEach((m, i) => {
    if (!isObject(m) || typeof m.role !== 'string') {
      throw new TokenizerError(`applyChatTemplate: messages[${i}].role must be a string`);
    }
  });
}
