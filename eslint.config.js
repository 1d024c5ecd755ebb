// Lint rules: typescript-eslint's recommended set plus the folder import rule of ARCHITECTURE.md section 8.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noImport = (patterns, message) => ['error', { patterns: patterns.map((group) => ({ group: [group], message })) }];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bench/results/**', 'dashboard/dist/**', '.mycel/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: false } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'off',
      // Protocol code matches control characters on purpose (CR, LF, NUL in headers).
      'no-control-regex': 'off',
    },
  },
  {
    // Plain Node scripts (the bin shim, build and test runners): Node's globals.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly' } },
  },
  {
    // The native addon's loader and install script (packages/original-dst) are CommonJS, as node-gyp packages are.
    files: ['packages/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { require: 'readonly', module: 'writable', __dirname: 'readonly', process: 'readonly', console: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  { files: ['src/proxy/**/*.ts'], rules: { 'no-restricted-imports': noImport(['**/control-plane/**'], 'proxy/ must not import control-plane/') } },
  { files: ['src/control-plane/**/*.ts'], rules: { 'no-restricted-imports': noImport(['**/proxy/**'], 'control-plane/ must not import proxy/') } },
  {
    files: ['src/core/**/*.ts'],
    rules: { 'no-restricted-imports': noImport(['**/proxy/**', '**/control-plane/**', '**/api/**', '**/cli/**', '**/security/**', '**/telemetry/**'], 'core/ imports nothing above it') },
  },
);
