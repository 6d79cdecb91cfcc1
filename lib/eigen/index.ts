export { calibrate, resolveBackend, CalibrationError, type CalibrateOptions, type CalibrateBackend, type CalibrationReport, type LayerReport } from './calibrate.js';
export { sampleTokens, captureAttentionInputs } from './capture.js';
