export * from './member-process.js'
export * from './data-dir-lock.js'
