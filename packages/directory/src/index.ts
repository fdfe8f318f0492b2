export * from './errors.js'
export * from './namespace.js'
export * from './pages.js'
export * from './directory-server.js'
