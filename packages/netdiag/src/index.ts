export * from './errors.js'
export * from './report.js'
export * from './settings.js'
export * from './netdiag.js'
