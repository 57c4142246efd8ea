// Configuration schema
interface Configuration {
  app: {
    name: string;           // Application name
    version: string;        // Version from package.json
    environment: 'development' | 'staging' | 'production';
    logLevel: 'error' | 'warn' | 'info' | 'debug' | 'trace';
    port: number;          // Application port
  };
  
  database: {
    host: string;
    port: number;
    database: string;
    username: string;
    password: string;
    ssl: boolean;
    maxConnections: number;
    idleTimeoutMs: number;
    connectionTimeoutMs: number;
  };
  
  redis: {
    host: string;
    port: number;
    password?: string;
    db: number;
    ttl: number;
    maxRetries: number;
    retryDelay: number;
  };
  
  messageQueue: {
    host: string;
    port: number;
    username: string;
    password: string;
    vhost: string;
    heartbeat: number;
    prefetchCount: number;
  };
  
  agents: {
    [agentName: string]: {
      enabled: boolean;
      replicas: number;
      resources: {
        cpu: string;
        memory: string;
      };
      config: Record<string, any>;
    };
  };
  
  monitoring: {
    prometheus: {
      enabled: boolean;
      endpoint: string;
      scrapeInterval: string;
    };
    jaeger: {
      enabled: boolean;
      endpoint: string;
      samplingRate: number;
    };
    logging: {
      level: string;
      format: 'json' | 'text';
      elasticsearch?: {
        host: string;
        index: string;
      };
    };
  };
}
