// lib/secrets-manager.ts
import { SecretsManagerClient, GetSecretValueCommand } from "@aws-sdk/client-secrets-manager";

class SecretsManager {
  private client: SecretsManagerClient;
  private cache: Map<string, { value: any; expires: number }> = new Map();
  
  constructor(region: string = 'us-east-1') {
    this.client = new SecretsManagerClient({ region });
  }
  
  async getSecret(secretName: string, useCache: boolean = true): Promise<any> {
    if (useCache && this.cache.has(secretName)) {
      const cached = this.cache.get(secretName)!;
      if (Date.now() < cached.expires) {
        return cached.value;
      }
    }
    
    try {
      const command = new GetSecretValueCommand({ SecretId: secretName });
      const response = await this.client.send(command);
      
      let secretValue;
      if (response.SecretString) {
        secretValue = JSON.parse(response.SecretString);
      } else {
        throw new Error(`Secret ${secretName} is not a string`);
      }
      
      // Cache for 5 minutes
      if (useCache) {
        this.cache.set(secretName, {
          value: secretValue,
          expires: Date.now() + 5 * 60 * 1000
        });
      }
      
      return secretValue;
    } catch (error) {
      console.error(`Failed to retrieve secret ${secretName}:`, error);
      throw error;
    }
  }
  
  async getDatabaseCredentials(): Promise<DatabaseCredentials> {
    return await this.getSecret('i2s/database/credentials');
  }
  
  async getAPIKeys(): Promise<APIKeys> {
    return await this.getSecret('i2s/api/keys');
  }
}

interface DatabaseCredentials {
  username: string;
  password: string;
  host: string;
  port: number;
  database: string;
}

interface APIKeys {
  openai: string;
  anthropic: string;
  github: string;
  [key: string]: string;
}
