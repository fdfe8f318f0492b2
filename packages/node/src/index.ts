export * from './errors.js'
export * from './blob-store.js'
export * from './storage-node.js'
export * from './scrubber.js'
