export * from './netns.js'
export * from './tools.js'
export * from './testbed.js'
