/** Layer plans: types, validation, presets and the text notation (DESIGN.md section 2). */
export * from './types.js';
export * from './validate.js';
export * from './presets.js';
export * from './notation.js';
export * from './ranks.js';
