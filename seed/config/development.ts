// config/development.ts
export const developmentConfig = {
  app: {
    name: 'I2S Studio Dev',
    version: process.env.APP_VERSION || 'dev',
    environment: 'development',
    debug: true,
    logLevel: 'debug'
  },
  
  database: {
    host: 'localhost',
    port: 5432,
    database: 'i2s_dev',
    username: 'postgres',
    password: 'postgres',
    ssl: false,
    logging: true
  },
  
  redis: {
    host: 'localhost',
    port: 6379,
    password: null,
    db: 0,
    retryDelayOnFailover: 100,
    maxRetriesPerRequest: 3
  },
  
  agents: {
    conductor: {
      enabled: true,
      maxConcurrentPipelines: 3,
      timeout: '30m',
      budgets: {
        tokensPerPipeline: 100000,
        maxCostUSD: 25.00
      }
    },
    
    security: {
      enabled: true,
      scanners: ['basic'],
      compliance: ['development'],
      failOnCritical: false
    }
  },
  
  monitoring: {
    prometheus: {
      enabled: true,
      endpoint: 'http://localhost:9090'
    },
    jaeger: {
      enabled: true,
      endpoint: 'http://localhost:14268'
    }
  }
};
