export * from './member-process.js'
