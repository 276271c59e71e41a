/** The only environment config fixtures see: never process.env, so results do not depend on the machine. */
export const FIXTURE_ENV: Readonly<Record<string, string>> = Object.freeze({
  HOME: '/root',
  BERTH_TEST_EMPTY: '',
  BERTH_TEST_PORT: '9090',
  BERTH_TEST_FLAG: 'true',
  BERTH_TEST_HOST: '0.0.0.0',
  BERTH_TEST_PIN: '0123',
  BERTH_TEST_SECRET: '{s3cr#t',
});
