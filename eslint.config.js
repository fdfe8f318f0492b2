import neostandard from 'neostandard'

// neostandard: the style the code is written in (standard, for TypeScript), plus a line-length limit
export default [
  ...neostandard({ ts: true, ignores: ['**/dist/**', '**/node_modules/**', '.mirrorcast/**'] }),
  {
    files: ['**/*.ts'],
    rules: {
      // `void promise` marks a promise deliberately not awaited (its errors are handled where it was made)
      'no-void': ['error', { allowAsStatement: true }],
      // false alarms on loops whose condition an awaited callback changes (`while (running)`)
      'no-unmodified-loop-condition': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // 200: long enough for a one-line guard with its message, short enough to read without scrolling
      '@stylistic/max-len': ['error', { code: 200, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }]
    }
  }
]
